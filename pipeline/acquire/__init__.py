"""Getting the raw data: verified downloads, machine-local mirrors, and the checks that
make an archive or a book safe and complete to read."""
