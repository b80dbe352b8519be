"""Live quality watch after a promotion: anytime-valid drift tests over judged live samples (pure)."""
