from django.urls import path

from dictamesh_connectors.contrib.django.views import health
from tests.integration.contrib.djangoproject import views

urlpatterns = [
    path("query/<int:number>", views.query),
    path("health", health),
]
