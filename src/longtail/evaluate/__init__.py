"""Full-ranking metrics, segments, significance and reports for recommenders."""
