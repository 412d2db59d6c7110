# required to be a module
