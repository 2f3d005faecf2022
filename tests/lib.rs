mod activation;
mod loss;
