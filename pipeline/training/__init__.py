"""Training the neural models: where they run (`runtime`: device, threads, seeds, DDP),
the one loop they share (`loop.fit`), its checkpoints, the MLflow run around it
(`tracked.train_and_track`), what the two language models share (`lm`: truncated-BPTT
streams and their task), and loading a trained model back (`trained`)."""
