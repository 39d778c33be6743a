"""photopop.evaluation"""
