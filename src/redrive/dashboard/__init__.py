"""The Streamlit dashboard: pages that read and act only through the HTTP API."""
