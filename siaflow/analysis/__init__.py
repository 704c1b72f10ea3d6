"""The SIA measurement: the estimators (H_k, gold surprisal, alignment), the aggregations behind Tables 1-3 and Figures 1-5, Fano's bound, SIA through training, and the statistics they share."""
