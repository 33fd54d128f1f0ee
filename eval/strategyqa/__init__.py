"""StrategyQA: yes/no questions needing implicit reasoning steps; yes/no accuracy."""
