"""Statistical second opinion for the buyer-message classifier (see naive_bayes.py)."""
