"""lab_sfa.lm: SFA for causal language models (text domains, math, small LM presets, the lm-domains sequence)."""
