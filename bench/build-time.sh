#!/usr/bin/env bash
# Build time of an app that uses Squash.Build the way applications do (PackageReference from a feed), with the OCR
# sample's three models in int8 with calibration: a cold build, then no-change builds with and without restore, and a
# plain console app's no-change build for the SDK's own floor. docs/performance.md, "Build time".
# Usage: bash bench/build-time.sh   (after `dotnet build Squash.Build.sln -c Release`)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/feed" "$work/app" "$work/plain"
for p in src/Squash.Runtime/Squash.Runtime.csproj src/Squash.Build/Squash.Build.csproj; do
  dotnet pack "$repo/$p" -c Release --no-build --no-restore -o "$work/feed" -v:q > /dev/null
done
version=$(ls "$work/feed"/Squash.Build.*.nupkg | sed 's/.*Squash\.Build\.\(.*\)\.nupkg/\1/')
echo '<Project />' > "$work/Directory.Build.props"
echo '<Project />' > "$work/Directory.Build.targets"
cat > "$work/nuget.config" <<XML
<configuration>
  <packageSources><clear /><add key="local" value="$work/feed" /><add key="cache" value="${NUGET_PACKAGES:-$HOME/.nuget/packages}" /></packageSources>
  <packageSourceMapping><clear />
    <packageSource key="local"><package pattern="Squash.Build" /><package pattern="Squash.Runtime" /></packageSource>
    <packageSource key="cache"><package pattern="*" /></packageSource>
  </packageSourceMapping>
</configuration>
XML
models="$repo/testassets/models/ppocr"
calib="$repo/testassets/data/ppocr/calib"
first_stage="p2o.Conv.1;p2o.Conv.2;p2o.Conv.3;p2o.Conv.4;p2o.Conv.5;p2o.Conv.6;p2o.Conv.7;p2o.Conv.8;p2o.Conv.9;p2o.Conv.10"
cat > "$work/app/App.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><Nullable>enable</Nullable></PropertyGroup>
  <ItemGroup>
    <PackageReference Include="Squash.Build" Version="$version" />
    <SquashModel Include="$models/ch_PP-OCRv4_det_infer.onnx" ClassName="Det" InputShapes="x=1,3,480,480" Precision="int8" Calibration="$calib/det" QuantizationExclusions="$first_stage" />
    <SquashModel Include="$models/ch_ppocr_mobile_v2.0_cls_infer.onnx" ClassName="Cls" InputShapes="x=1,3,48,192" Precision="int8" Calibration="$calib/cls" />
    <SquashModel Include="$models/ch_PP-OCRv4_rec_infer.onnx" ClassName="Rec" InputShapes="x=1,3,48,320" Precision="int8" Calibration="$calib/rec" />
  </ItemGroup>
</Project>
XML
echo 'System.Console.WriteLine(typeof(App.Cls).Name + typeof(App.Det).Name + typeof(App.Rec).Name);' > "$work/app/Program.cs"
export NUGET_PACKAGES="$work/packages"
(cd "$work/plain" && dotnet new console --force > /dev/null && dotnet build -c Release -v:q > /dev/null)
cd "$work/app"
dotnet restore -v:q > /dev/null   # the packages' download is not build time
/usr/bin/time -f "cold build (three int8 compilations with calibration): %e s" dotnet build -c Release -v:q --no-restore > /dev/null
dotnet bin/Release/net10.0/App.dll
for i in 1 2 3; do /usr/bin/time -f "no change, dotnet build: %e s" dotnet build -c Release -v:q > /dev/null; done
for i in 1 2 3; do /usr/bin/time -f "no change, dotnet build --no-restore: %e s" dotnet build -c Release -v:q --no-restore > /dev/null; done
cd "$work/plain"
for i in 1 2 3; do /usr/bin/time -f "plain console app, no change, dotnet build: %e s" dotnet build -c Release -v:q > /dev/null; done
