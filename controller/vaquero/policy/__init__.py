"""vaquero.policy"""
