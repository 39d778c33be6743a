"""photopop.inference"""
