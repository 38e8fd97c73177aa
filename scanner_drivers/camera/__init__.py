"""Cameras: one frame per trigger from V4L2, RTSP/HTTP streams, video files or image folders."""
