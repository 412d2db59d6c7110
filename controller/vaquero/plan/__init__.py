"""vaquero.plan"""
