"""vaquero.agent"""
