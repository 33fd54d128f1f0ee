"""WebShop evaluation: episodes over the text environment, scored with the WebShop reward."""
