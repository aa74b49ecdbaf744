"""Layer 6: the family trainers (classifier, GAN, restoration), their callbacks and config checks."""
