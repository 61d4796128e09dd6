Sqair.NativeAllocator.Configure();
return Sqair.Cli.Cli.Run(args);
