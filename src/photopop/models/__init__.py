"""photopop.models"""
