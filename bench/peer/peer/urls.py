"""The page at `/`: the same page as the Rust quick start."""
from django.urls import path

from benchapp.views import index

urlpatterns = [path("", index)]
