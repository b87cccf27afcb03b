"""RL agents for the scheduling environment: masked PPO and masked double DQN (one file each)."""
