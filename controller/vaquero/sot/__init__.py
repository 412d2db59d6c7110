"""vaquero.sot"""
