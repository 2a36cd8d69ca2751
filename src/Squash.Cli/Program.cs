using Squash.Cli;

return CommandLine.Execute(args, Console.Out, Console.Error);
