"""Figure and table helpers of the book chapters, one module per chapter."""
