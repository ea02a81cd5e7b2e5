"""What every stage needs: params (typed, validated), output paths and safe writing,
the errors a user can fix, and the wrapper that makes a stage a command."""
