"""WebShop: a text shopping environment over a product catalogue, its search engine and reward."""
