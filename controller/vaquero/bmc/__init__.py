"""vaquero.bmc"""
