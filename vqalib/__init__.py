"""vqalib."""
