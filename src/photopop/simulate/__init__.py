"""photopop.simulate"""
