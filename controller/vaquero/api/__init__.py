"""vaquero.api"""
