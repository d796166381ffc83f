"""Uplift per strategy (docs/uplift.md): what a retention strategy changes, for whom, at what cost.

``learner`` fits a T-learner on LightGBM from randomised campaigns (``campaigns`` table joined to
the point-in-time feature table at each campaign's date); ``metrics`` scores a targeting with
Qini curves and AUUC on held-out campaigns; ``plan`` turns predicted uplift, value and cost into
a budgeted action plan.
"""
