"""The Gradio app, one module per part; it holds no sampling logic."""
