"""photopop.report"""
