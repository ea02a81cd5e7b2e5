"""One module per DVC stage, named as the stage. Each reads params.yaml, writes the
stage's declared outputs, and imports no other stage module (what two stages share lives
in the package above), so a stage's code dependencies are its own import closure."""
