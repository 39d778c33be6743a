"""photopop.datasets"""
