use clap::Parser;

fn main() {
    let cli = pathkernel::cli::Cli::parse();
    std::process::exit(pathkernel::cli::main(cli));
}
