"""vaquero.state"""
