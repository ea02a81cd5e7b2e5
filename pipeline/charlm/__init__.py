"""The character language model on Jules Verne's The Mysterious Island."""
