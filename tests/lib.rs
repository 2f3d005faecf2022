mod tableau;
