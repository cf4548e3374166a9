"""Training tier (imports as dcgan_rt.train): networks, datasets, the training loop,
checkpoints. Imports torch and torchvision; the core dcgan_rt tier never imports this."""
