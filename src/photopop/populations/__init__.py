"""photopop.populations"""
