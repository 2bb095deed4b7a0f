"""The torch engine of sklearn-snn. Nothing here imports scikit-learn."""
