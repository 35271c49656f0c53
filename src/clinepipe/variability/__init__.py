"""Variability: which stars vary (statistics, periods) and suspected new variables."""
