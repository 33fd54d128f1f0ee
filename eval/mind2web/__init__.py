"""Mind2Web: loading, candidate elements, step-level scoring (MindAct's metrics)."""
