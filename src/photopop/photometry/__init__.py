"""photopop.photometry"""
