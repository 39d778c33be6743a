"""photopop.experiments"""
