"""vaquero.render"""
