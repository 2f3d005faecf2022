mod data;
mod spec;
