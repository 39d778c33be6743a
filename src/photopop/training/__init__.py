"""photopop.training"""
