Sqair.Native.ProcessTuning.Apply();
return Sqair.Cli.Cli.Run(args);
