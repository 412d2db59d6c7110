"""vaquero.runner"""
