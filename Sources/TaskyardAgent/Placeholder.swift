enum PlaceholderTaskyardAgent {}
