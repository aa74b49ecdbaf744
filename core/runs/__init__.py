"""Layer 7: what owns a run: training it end to end, the job queue, evaluating and applying a run's model."""
