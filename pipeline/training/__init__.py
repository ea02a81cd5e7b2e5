"""Training the neural models: where they run (`runtime`: device, threads, seeds, DDP),
the one loop they share (`loop.fit`), its checkpoints, the MLflow run around it
(`tracked.train_and_track`), the language model's truncated-BPTT streams and task
(`lm`), and loading a trained model back (`trained`)."""
